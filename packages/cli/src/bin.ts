#!/usr/bin/env node
import { main } from './main.js';

// Exit explicitly: keep-alive sockets to the Docker engine must not hold the process open.
process.exit(await main(process.argv.slice(2)));
