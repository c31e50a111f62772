/*
 * Jasiyo stand-in for <freeradius/clients.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. Clients are opaque
 * to rlm_jasiyo: dynamic clients are defined through control attributes
 * (FreeRADIUS-Client-*), never by touching these structures.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_CLIENTS_H
#define JASIYO_STANDIN_FREERADIUS_CLIENTS_H

typedef struct rad_client RADCLIENT;
typedef struct radclient_list RADCLIENT_LIST;

/* users-file entries; radiusd.h declares pairlist_read() with it. */
typedef struct pair_list PAIR_LIST;

#endif
