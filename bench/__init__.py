"""vrlvr benchmarks (JSON output). In a source tree run them as scripts
(`python bench/bench_sde.py --help`); installed, they ship as vrlvr.bench and run as
`vrlvr bench NAME [args ...]`."""
