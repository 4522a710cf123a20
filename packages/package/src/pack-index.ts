// Making packages: bundling (esbuild, loaded only when called) and packing. A separate entry
// point, so that readers of packages (the gatekeeper) never pull the bundler in.
export { bundleFunctionPackage, BUNDLE_CONNECTORS, BUNDLE_ENTRY, PROVIDED_BY_RUNTIME, type Bundle } from './bundle.js';
export { readFunctionPackage, isTypeScript, type FunctionPackage } from './function-package.js';
export { packFunctionPackage, writePackageFile, sha256, GZIP_LEVEL, type PackResult } from './pack.js';
