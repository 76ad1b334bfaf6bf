// SPDX-License-Identifier: MIT
// weft: a work-stealing fiber runtime for nested parallel C++. Umbrella header.
#pragma once

#include "weft/detail/cxx20.hpp"

#include "weft/algorithm.hpp"
#include "weft/config.hpp"
#include "weft/join.hpp"
#include "weft/parallelize.hpp"
#include "weft/runtime.hpp"
#include "weft/stats.hpp"
#include "weft/sync.hpp"
#include "weft/task_group.hpp"
#include "weft/this_fiber.hpp"
#include "weft/version.hpp"
#include "weft/workspan.hpp"
