#!/usr/bin/env bash
# Three topologies, one after another, each of static UDP peerings over IPv4 on veths (one /24 per veth,
# the lower-numbered node listens, the other peers to it): a 5-node line, a 5-node ring and a 3x3 grid.
# In each, every ordered pair of nodes must reach the other's overlay address by ping6 (each pair gets up
# to 10 s to converge, all pairs in parallel), then once more when every link is up. Prints, per
# topology, when the last daemon's API answered, when the last link came up and when every pair had
# answered, all counted from the launch of the first daemon (daemons are started one after the other).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mesh_lib.sh"

# topology NAME NODES -- EDGES...: builds, starts, checks and tears down one topology. An edge is "A:B".
topology() {
    local name="$1" nodes=()
    shift
    while [ "$1" != "--" ]; do nodes+=("$1"); shift; done
    shift
    local pairs=$((${#nodes[@]} * (${#nodes[@]} - 1))) n edge
    for n in "${nodes[@]}"; do mesh_node "$n"; done
    for edge in "$@"; do mesh_link "${edge%:*}" "${edge#*:}"; done
    mesh_start "${nodes[@]}"
    mesh_ping_all 10 "${nodes[@]}" || fail "$name: not every pair converged within 10 s"
    mesh_wait_links 10 "${nodes[@]}"
    echo "$name (${#nodes[@]} nodes, $# links): daemons up $((MESH_STARTED_MS - MESH_T0_MS)) ms, links up $MESH_LINKS_MS ms, all $pairs ordered pairs answer ping6 $((MESH_LAST_OK_MS - MESH_T0_MS)) ms after the first launch"
    # Steady state, with every link up: each pair once more, one ping with a 2 s wait.
    mesh_ping_pairs "-c 1 -W 2" "${nodes[@]}" || fail "$name: pairs lost after convergence"
    mesh_stop "${nodes[@]}"
}

topology "line" l1 l2 l3 l4 l5 -- l1:l2 l2:l3 l3:l4 l4:l5
topology "ring" r1 r2 r3 r4 r5 -- r1:r2 r2:r3 r3:r4 r4:r5 r1:r5
# 3x3 grid, g1 g2 g3 on the first row; links to the right and downward.
topology "grid 3x3" g1 g2 g3 g4 g5 g6 g7 g8 g9 -- \
    g1:g2 g2:g3 g4:g5 g5:g6 g7:g8 g8:g9 \
    g1:g4 g4:g7 g2:g5 g5:g8 g3:g6 g6:g9
