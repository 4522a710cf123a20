/** Labels on every Docker resource Data Station creates, so a reaper can find what a dead controller left. */
export const LABELS = {
  session: 'io.datastation.session',
  user: 'io.datastation.user',
  package: 'io.datastation.package',
  ownerPid: 'io.datastation.owner-pid',
  ownerHost: 'io.datastation.owner-host',
  image: 'io.datastation.image',
  version: 'io.datastation.version',
  inputs: 'io.datastation.inputs',
} as const;
