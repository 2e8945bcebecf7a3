// Start srt's HTTP proxy (from the pinned npm package) with an allow-everything filter, for the
// side-by-side tunnel benchmark. Prints the port on stdout.
import { createHttpProxyServer } from '../.tools/node/node_modules/@anthropic-ai/sandbox-runtime/dist/sandbox/http-proxy.js';

const server = createHttpProxyServer({ filter: async () => true });
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
