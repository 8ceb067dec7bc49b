#!/bin/bash
# suite: offload - offload: tc flower / OVS rule programming on representors
# needs:
# Placeholder until the component lands; it then replaces this file.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

skip "offload suite" "component not built yet"
summary
