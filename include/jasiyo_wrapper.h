/*
 * Wrapper header for bindgen (see build.rs). Written for the Jasiyo project.
 *
 * It includes the installed FreeRADIUS 3.2 server headers (build.h first,
 * because radiusd.h uses RCSIDH before including it) and re-exports the macro
 * values rlm_jasiyo needs as enumerators, which bindgen turns into Rust
 * constants. The values come from the installed headers at build time; none
 * is hard-coded here.
 *
 * Headers Debian's libfreeradius-dev 3.2.1 does not install are supplied by
 * our own stand-ins in include/freeradius/, searched after the real include
 * directory (-idirafter) so a complete header set always wins.
 */
#ifndef JASIYO_WRAPPER_H
#define JASIYO_WRAPPER_H

#include <stdint.h>
#include <freeradius/build.h>
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>

/* Module magic: RADIUSD_MAGIC_NUMBER for the exact server version installed. */
enum jasiyo_module_magic : uint64_t {
	JASIYO_RLM_MODULE_INIT = RLM_MODULE_INIT
};

enum jasiyo_constants {
	JASIYO_RLM_TYPE_THREAD_SAFE = RLM_TYPE_THREAD_SAFE,
	JASIYO_RLM_TYPE_THREAD_UNSAFE = RLM_TYPE_THREAD_UNSAFE,
	JASIYO_RLM_TYPE_HUP_SAFE = RLM_TYPE_HUP_SAFE,

	/* CONF_PARSER type flags (conffile.h). */
	JASIYO_PW_TYPE_REQUIRED = PW_TYPE_REQUIRED,
	JASIYO_PW_TYPE_SECRET = PW_TYPE_SECRET,
	JASIYO_PW_TYPE_NOT_EMPTY = PW_TYPE_NOT_EMPTY,

	/* Tag wildcard for fr_pair_find_by_*(). */
	JASIYO_TAG_ANY = TAG_ANY,

	/* Attribute numbers and values used by the module. */
	JASIYO_PW_AUTH_TYPE_ACCEPT = PW_AUTH_TYPE_ACCEPT,
	JASIYO_PW_SERVICE_TYPE = PW_SERVICE_TYPE,
	JASIYO_PW_FRAMED_PROTOCOL = PW_FRAMED_PROTOCOL,
	JASIYO_PW_FRAMED_USER = PW_FRAMED_USER,
	JASIYO_PW_LOGIN_USER = PW_LOGIN_USER,
	JASIYO_PW_PPP = PW_PPP,
	JASIYO_PW_MESSAGE_AUTHENTICATOR = PW_MESSAGE_AUTHENTICATOR,

	/* Packet codes. */
	JASIYO_PW_CODE_ACCESS_ACCEPT = PW_CODE_ACCESS_ACCEPT,
	JASIYO_PW_CODE_ACCESS_REJECT = PW_CODE_ACCESS_REJECT
};

#endif
