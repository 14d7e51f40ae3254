// `kiln freeze` (TF's convert_variables_to_constants) and the --tags/--signature options the
// model-reading commands share for SavedModel directories.
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "io/tf/freeze.h"

namespace kiln::cli {
namespace {

const char* kFreezeHelp = R"(usage: kiln freeze --meta MODEL.meta --checkpoint PREFIX_OR_DIR --outputs a,b -o FROZEN.pb

Freezes a TensorFlow MetaGraph with its checkpoint (TF's convert_variables_to_constants):
variables become constants read from the checkpoint, the graph is pruned to what the outputs
need (save/restore and training nodes go), and the result is written as a frozen GraphDef
(.pbtxt: text, else binary), through a temporary file renamed into place.

options:
  --meta FILE                 the MetaGraphDef (model.ckpt.meta; binary or text)
  --checkpoint PREFIX_OR_DIR  checkpoint prefix (model.ckpt, next to model.ckpt.index), or a
                              directory whose `checkpoint` state file names the latest one
  --outputs a,b               output tensors ("node:K" or "node") to keep (required)
  -o, --output FILE           the frozen GraphDef to write (required)
  --help                      show this help
)";

int Usage(const std::string& message) {
  std::cerr << "kiln: " << message << "\n\n" << kFreezeHelp;
  return 2;
}

}  // namespace

LoadOptions LoadOptionsFromArgs(const Args& args) {
  LoadOptions options;
  if (auto t = args.Get("tags")) options.saved_model_tags = SplitList(*t);
  if (auto s = args.Get("signature")) options.saved_model_signature_key = *s;
  return options;
}

int FreezeCommand(int argc, char** argv) {
  std::vector<std::string> storage;
  for (int i = 0; i < argc; ++i) {
    storage.push_back(argv[i] == std::string("-o") ? "--output" : argv[i]);
  }
  std::vector<char*> rewritten;
  for (auto& s : storage) rewritten.push_back(s.data());
  auto parsed = Args::Parse(static_cast<int>(rewritten.size()), rewritten.data(),
                            {"meta", "checkpoint", "outputs", "output"}, {"help"});
  if (!parsed.ok()) return Usage(parsed.status().message());
  const Args& args = *parsed;
  if (args.Has("help")) {
    std::cout << kFreezeHelp;
    return 0;
  }
  if (!args.positionals().empty()) return Usage("freeze takes no positional arguments");
  for (const char* required : {"meta", "checkpoint", "outputs", "output"}) {
    if (!args.Has(required)) return Usage(std::string("freeze needs --") + required);
  }
  const std::vector<std::string> outputs = SplitList(*args.Get("outputs"));
  if (outputs.empty()) return Usage("--outputs names no tensor");
  const std::string out = *args.Get("output");
  Status st = FreezeMetaGraphToFile(*args.Get("meta"), *args.Get("checkpoint"), outputs, out);
  if (!st.ok()) {
    std::cerr << "kiln: error: " << st.ToString() << "\n";
    return 1;
  }
  std::cout << "wrote " << out << "\n";
  return 0;
}

}  // namespace kiln::cli
