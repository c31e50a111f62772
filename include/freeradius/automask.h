/*
 * Jasiyo stand-in for <freeradius/automask.h>, which Debian's autoconf.h
 * includes but does not install. Written for the Jasiyo project. Upstream it
 * only undoes autoconf package macros; nothing rlm_jasiyo uses depends on it,
 * so it is intentionally empty.
 */
#ifndef JASIYO_STANDIN_FREERADIUS_AUTOMASK_H
#define JASIYO_STANDIN_FREERADIUS_AUTOMASK_H
#endif
