/*
 * Jasiyo stand-in for <freeradius/log.h>.
 *
 * Written for the Jasiyo project (not taken from FreeRADIUS). Debian 12's
 * libfreeradius-dev 3.2.1 does not install this header although radiusd.h
 * includes it. It declares only what radiusd.h needs to compile and what
 * rlm_jasiyo calls. The numeric values are the ABI facts of FreeRADIUS 3.2:
 * the server binary interprets them, so they must not change.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_LOG_H
#define JASIYO_STANDIN_FREERADIUS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

/* Message categories passed as the first argument of radlog()/radlog_request(). */
typedef enum log_type {
	L_AUTH = 2,
	L_INFO = 3,
	L_ERR = 4,
	L_WARN = 5,
	L_PROXY = 6,
	L_ACCT = 7,
	L_DBG = 16,
	L_DBG_WARN = 17,
	L_DBG_ERR = 18,
	L_DBG_WARN_REQ = 19,
	L_DBG_ERR_REQ = 20
} log_type_t;

/* Debug verbosity (the number of -x flags, or request->log.lvl). */
typedef enum log_lvl {
	L_DBG_LVL_DISABLE = -1,
	L_DBG_LVL_OFF = 0,
	L_DBG_LVL_1 = 1,
	L_DBG_LVL_2 = 2,
	L_DBG_LVL_3 = 3,
	L_DBG_LVL_4 = 4,
	L_DBG_LVL_MAX = 18
} log_lvl_t;

/* Per-request log sink stored in REQUEST.log.func. */
typedef void (*radlog_func_t)(log_type_t lvl, log_lvl_t priority, REQUEST *request,
			      char const *fmt, va_list ap);

/* Exported by the server binary. Always call them with the format "%s". */
int radlog(log_type_t type, char const *fmt, ...);
void radlog_request(log_type_t type, log_lvl_t lvl, REQUEST *request, char const *fmt, ...);
bool radlog_debug_enabled(log_type_t type, log_lvl_t lvl, REQUEST *request);

#endif
