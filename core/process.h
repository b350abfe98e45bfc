/*
 * process.h - child processes on the event loop.
 *
 * Each child runs in its own process group (so a signal reaches
 * spark-submit and the JVMs it starts), with stdout and stderr read
 * through non-blocking pipes into on_output, and SIGCHLD handled by a
 * libevent signal event that reaps with waitpid(WNOHANG).  on_exit runs
 * after both pipes reached EOF, so no output is lost.
 *
 * Processes belong to an owner (a plugin).  Releasing an owner detaches
 * its callbacks: the processes keep running and are reaped silently
 * (a backend that reloads re-attaches to its jobs through its own state).
 */
#ifndef SPARKPLANE_CORE_PROCESS_H
#define SPARKPLANE_CORE_PROCESS_H

#include <event2/event.h>
#include <sparkplane/host.h>

typedef struct process_manager process_manager;

process_manager *process_manager_new(struct event_base *base);
/* Sends SIGTERM to every running group still owned (released ones keep running), frees. */
void process_manager_free(process_manager *manager);

int process_manager_spawn(process_manager *manager, void *owner, const sp_process_spec *spec,
                          sp_process **process_out, char *err, size_t err_size);
int process_manager_signal(sp_process *process, int signal_number);
long process_manager_pid(sp_process *process);

void process_manager_release_owner(process_manager *manager, void *owner);

/* Children not yet reaped. */
size_t process_manager_running(const process_manager *manager);

#endif
