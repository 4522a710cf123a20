import { createDockerClient, type DockerClient } from './client.js';

let shared: DockerClient | undefined;

/** One client per process for callers that do not bring their own. */
export function defaultDockerClient(): DockerClient {
  shared ??= createDockerClient();
  return shared;
}
