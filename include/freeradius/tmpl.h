/*
 * Jasiyo stand-in for <freeradius/tmpl.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. Templates are
 * opaque here; the two enums are only passed by value in map.h prototypes,
 * which rlm_jasiyo does not call.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_TMPL_H
#define JASIYO_STANDIN_FREERADIUS_TMPL_H

typedef struct vp_tmpl_t vp_tmpl_t;

typedef enum pair_lists {
	PAIR_LIST_UNKNOWN = 0,
	PAIR_LIST_REQUEST,
	PAIR_LIST_REPLY,
	PAIR_LIST_CONTROL,
	PAIR_LIST_STATE
} pair_lists_t;

typedef enum requests {
	REQUEST_UNKNOWN = 0,
	REQUEST_OUTER,
	REQUEST_CURRENT,
	REQUEST_PARENT
} request_refs_t;

#endif
