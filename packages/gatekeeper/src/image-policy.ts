import { checkImage, type Manifest } from '@datastation/package';
import { engineUnavailable, nameProblem } from '@datastation/protocol';
import { type DockerClient, LABELS, RUNTIME_IMAGE } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';

/** What the runtime image built by the station carries (`buildRuntimeImage`): `io.datastation.image=runtime`. */
export const STATION_IMAGE_LABEL = Object.freeze({ name: LABELS.image, value: 'runtime' });
/** The environment variable a station's operator lists further images in (server.ts reads it). */
export const ALLOWED_IMAGES_ENV = 'DS_ALLOWED_IMAGES';

const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

/**
 * Which images a package may run on: the station's runtime image (the one its build labels), or
 * one its operator allowed by id (`sha256:…`) or by reference (`repo:tag`, which admits the image
 * the reference names on the engine when checked). Any other image on the engine (a base image,
 * the gatekeeper's own, whatever someone pulled) is refused, though a package can name it.
 * Checked at upload and again before a session starts.
 */
export class ImagePolicy {
  readonly allowed: readonly string[];

  constructor(
    private readonly docker: { images: Pick<DockerClient['images'], 'inspect'> },
    allowed: readonly string[] = [],
  ) {
    this.allowed = Object.freeze(allowed.map((entry) => entry.trim()).filter((entry) => entry.length > 0));
    for (const entry of this.allowed) {
      const problem = nameProblem(entry, 512);
      if (problem) throw new DsError('BAD_REQUEST', `allowedImages (${ALLOWED_IMAGES_ENV}): an entry ${problem}; list image ids or references.`);
    }
  }

  /**
   * An upload's image: the engine has the manifest's reference with the recorded id (else
   * IMAGE_MISMATCH, as `checkImage` says), and that image is admitted.
   */
  async checkUpload(manifest: Manifest): Promise<void> {
    await checkImage(manifest, this.docker);
    await this.checkSession(manifest.image.id, manifest.image.ref);
  }

  /** A session's image (the package's recorded id): admitted, or IMAGE_MISMATCH saying how an operator allows it. */
  async checkSession(id: string, ref?: string): Promise<void> {
    if (this.allowed.includes(id)) return;
    const found = await this.inspect(id);
    if (found?.labels[STATION_IMAGE_LABEL.name] === STATION_IMAGE_LABEL.value) return;
    for (const entry of this.allowed) {
      if (IMAGE_ID.test(entry)) continue;
      if ((await this.inspect(entry))?.id === id) return;
    }
    const named = ref ? `${ref} (${id})` : id;
    if (!found && !this.allowed.includes(id))
      throw new DsError(
        'IMAGE_MISMATCH',
        `The package runs on ${named}, which is no longer on this station's engine (the runtime image was rebuilt, or the image removed). ` +
          `Package it again against ${RUNTIME_IMAGE} and upload it.`,
        { details: { image: id, ...(ref ? { ref } : {}) } },
      );
    throw new DsError(
      'IMAGE_MISMATCH',
      `The package runs on ${named}, an image this station did not build and its operator has not allowed. Packages run on the station's ` +
        `runtime image: package it again against ${RUNTIME_IMAGE} (\`ds package\` on a machine with \`ds image build\`'s image). An operator ` +
        `allows another image by adding its id or reference to ${ALLOWED_IMAGES_ENV} (comma-separated), or to the gatekeeper's allowedImages.`,
      { details: { image: id, ...(ref ? { ref } : {}) } },
    );
  }

  private inspect(ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined> {
    return this.docker.images.inspect(ref).catch((cause: unknown) => {
      throw engineUnavailable(cause, "checking the package's image");
    });
  }
}

/** The allow-list from `DS_ALLOWED_IMAGES`: comma-separated ids or references; unset or empty, none. */
export function parseAllowedImages(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
}
