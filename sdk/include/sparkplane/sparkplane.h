/*
 * sparkplane/sparkplane.h - the whole plugin SDK in one include.
 */
#ifndef SPARKPLANE_SPARKPLANE_H
#define SPARKPLANE_SPARKPLANE_H

#include <sparkplane/plugin.h>
#include <sparkplane/host.h>
#include <sparkplane/auth.h>
#include <sparkplane/backend.h>
#include <sparkplane/policy.h>
#include <sparkplane/manifest.h>

#endif
