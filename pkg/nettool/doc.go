// Package nettool implements seta-nettool, the small traffic tool run inside
// lab pods (network namespaces) by the demo and by the end-to-end tests.
//
// The "serve" command runs three echo servers side by side:
//
//   - TCP (default :7000): a line echo server; every line read is written
//     back as "NAME: <line>\n".
//   - UDP (default :7001): every datagram is sent back prefixed "NAME: ".
//   - HTTP (default :8080): GET / answers "NAME\n", GET /healthz "ok".
//
// NAME is the --name flag, the host name by default. The client commands
// (tcp, udp, http, stream, crr) talk to those servers, and dns asks a DNS
// server; all report through their exit status: 0 success, 1 failure (the
// reason on stderr), 2 usage error. Every loop is bounded in count and in
// time.
//
// The server side is usable from Go as well: Listen opens the sockets and
// Server.Serve runs them until its context is done, which is what the tests
// do with ephemeral loopback ports.
package nettool
