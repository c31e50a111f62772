/*
 * Jasiyo stand-in for <freeradius/listen.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. Listeners are
 * opaque to a module; only the names radiusd.h mentions are declared.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_LISTEN_H
#define JASIYO_STANDIN_FREERADIUS_LISTEN_H

typedef struct rad_listen rad_listen_t;

/*
 * Listener kinds. REQUEST.priority has this type, so only its size (an int)
 * matters for the REQUEST layout; modules never read it.
 */
typedef enum RAD_LISTEN_TYPE {
	RAD_LISTEN_NONE = 0,
	RAD_LISTEN_PROXY,
	RAD_LISTEN_AUTH,
	RAD_LISTEN_ACCT,
	RAD_LISTEN_DETAIL,
	RAD_LISTEN_VQP,
	RAD_LISTEN_DHCP,
	RAD_LISTEN_COMMAND,
	RAD_LISTEN_COA,
	RAD_LISTEN_MAX
} RAD_LISTEN_TYPE;

#endif
