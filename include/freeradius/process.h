/*
 * Jasiyo stand-in for <freeradius/process.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. Declares the
 * request state-machine types that appear as REQUEST fields; a module never
 * uses them, but their sizes fix the REQUEST layout (a function pointer, an
 * int-sized enum, a function pointer).
 */
#ifndef JASIYO_STANDIN_FREERADIUS_PROCESS_H
#define JASIYO_STANDIN_FREERADIUS_PROCESS_H

#include <freeradius/listen.h>

typedef enum fr_state_action_t {
	FR_ACTION_INVALID = 0,
	FR_ACTION_RUN,
	FR_ACTION_DONE,
	FR_ACTION_DUP,
	FR_ACTION_TIMER,
	FR_ACTION_PROXY_REPLY
} fr_state_action_t;

typedef void (*fr_request_process_t)(REQUEST *request, int action);

typedef int (*RAD_REQUEST_FUNP)(REQUEST *request);

#endif
