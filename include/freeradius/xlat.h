/*
 * Jasiyo stand-in for <freeradius/xlat.h> (not installed by Debian's
 * libfreeradius-dev 3.2.1). Written for the Jasiyo project. Only the opaque
 * expansion type that radiusd.h names.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_XLAT_H
#define JASIYO_STANDIN_FREERADIUS_XLAT_H

typedef struct xlat_exp xlat_exp_t;

#endif
