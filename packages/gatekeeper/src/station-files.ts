/**
 * Where the station's compose file and the images' Dockerfiles are. In the repository they are
 * its top-level `compose/` and `images/` (the one copy of each); this package's build copies both
 * into dist/station/ with the same layout, so the compose file's relative build contexts
 * (`../images/...`) hold in either place.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The repository's root from source (src/ is two levels down); dist/station/ once built (same depth from dist/). */
export const STATION_ROOT = fileURLToPath(FROM_SOURCE ? new URL('../../../', import.meta.url) : new URL('./station/', import.meta.url));
/** The compose file `ds up` and `ds down` run. */
export const STATION_COMPOSE_FILE = join(STATION_ROOT, 'compose', 'docker-compose.yml');
/** The gatekeeper image's Dockerfile. */
export const GATEKEEPER_DOCKERFILE = join(STATION_ROOT, 'images', 'gatekeeper', 'Dockerfile');
/** What the build copies into dist/station/, relative to the repository's root. */
export const STATION_FILES = ['compose/docker-compose.yml', 'images/runtime/Dockerfile', 'images/gatekeeper/Dockerfile'] as const;
