# bench/local.mk - the benchmark scripts ship in the tarball; nothing is built.
# bench/run.sh is run by hand or by scripts/test.sh, never by make check:
# it measures, it does not assert.
EXTRA_DIST += bench/run.sh bench/common.sh bench/README.md
# bench/jobs.sh - the jobs API (submits, reads, 1M-job store) on backend_sim.
EXTRA_DIST += bench/jobs.sh bench/jobs.lua bench/jobs_list.lua bench/jobs_bulk.py
# bench/auth.sh - static token vs JWT (cache warm, cold per algorithm) vs mTLS through nginx.
EXTRA_DIST += bench/auth.sh bench/auth_tokens.py
# bench/gateway.sh - the Spark Connect gateway vs direct vs nghttpx; the upstream
# (gateway_echo.c) is compiled by the script into a temporary directory, not by make.
EXTRA_DIST += bench/gateway.sh bench/gateway_echo.c bench/gateway_idle.py
# bench/clusters.sh - provisioned clusters on real Spark (local backend): POST to first query,
# cold vs hot, and a first query through the gateway vs direct; its Python client is a heredoc.
EXTRA_DIST += bench/clusters.sh
