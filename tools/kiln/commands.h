// Subcommands of the `kiln` CLI that live in their own files; main.cc dispatches to them with
// the arguments after the command name (argv[0] is the first option or MODEL).
#pragma once

namespace kiln::cli {

// `kiln bench MODEL [options]` (cmd_bench.cc): trtexec-style latency/throughput benchmark of
// the converted model, optionally against the unconverted graph. Returns the exit code.
int BenchCommand(int argc, char** argv);

// `kiln convert MODEL -o OUT [options]` (cmd_convert.cc).
int ConvertCommand(int argc, char** argv);

// `kiln cache ls|clear [--engine-cache DIR]` (cmd_cache.cc): the disk engine cache.
int CacheCommand(int argc, char** argv);

// `kiln freeze --meta M --checkpoint C --outputs a,b -o OUT` (cmd_freeze.cc).
int FreezeCommand(int argc, char** argv);

// `kiln serve --model-repository DIR [options]` (cmd_serve.cc, src/serve/): KServe v2 HTTP.
int ServeCommand(int argc, char** argv);

}  // namespace kiln::cli
