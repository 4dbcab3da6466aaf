/* Syscall facts shared by the filter (broker) and the handlers (tracer):
 * one source of truth. */
#pragma once
#include "kcompat.h"

/* Every namespace-creating clone(2) flag: CLONE_NEWNS, CLONE_NEWCGROUP,
 * CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
 * CLONE_NEWTIME. */
#define CLONE_NS_FLAGS 0x7e020080ULL
