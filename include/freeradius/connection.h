/*
 * Jasiyo stand-in for <freeradius/connection.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. rlm_jasiyo opens
 * no connections, and nothing in the installed headers needs a declaration
 * from this file, so it is intentionally empty.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_CONNECTION_H
#define JASIYO_STANDIN_FREERADIUS_CONNECTION_H
#endif
