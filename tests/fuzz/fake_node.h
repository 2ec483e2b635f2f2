/*
 * fake_node.h - a node that is not one: a thread of this process listens
 * on 127.0.0.1 and answers every request with the bytes last set, whatever
 * they are. It reads each request whole first (headers, and a
 * Content-Length or chunked body), then writes the response and closes,
 * so that no client waits on it. Connections are served one at a time.
 *
 * Also here: the client's retry pauses are skipped (see nanosleep in
 * fake_node.c), for the targets that run the http:// client.
 */
#ifndef MINIDBX_FAKE_NODE_H
#define MINIDBX_FAKE_NODE_H

#include <stddef.h>

/* Start listening (once); the port. Stopped at exit. */
unsigned short fake_node_start(void);

/* What every request gets from now on (copied). */
void fake_node_set_response(const char *data, size_t size);

#endif /* MINIDBX_FAKE_NODE_H */
