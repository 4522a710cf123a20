/**
 * The Data Station gatekeeper. For now: its store (principals, packages, grants, runs, sessions
 * and the tamper-evident audit log, in SQLite or PostgreSQL). The HTTP API comes next.
 */
export * from './store/index.js';
