export { HOSTILE_FUNCTIONS, hostilePackage, PROBE_IN_CONTAINER } from './hostile.js';
export { expectFdsBackTo, expectNoSessionDirs, expectNoSessionResources, listTree, mountsUnder, openFds } from './leaks.js';
export { hostAddressFacing, interfaceAddress, listenBait, type Bait } from './net.js';
export { probeBinary } from './probe.js';
export { gzipTar, paxRecord, tarEntry, tarHeader, type RawTarEntry } from './tar.js';
export { packageFrame } from './package-frame.js';
