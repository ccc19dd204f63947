// Subcommand entry points. Each returns the process exit code; errors are thrown as
// dsv4::Error and turned into one "dsv4 <cmd>: error: ..." line by main().
#pragma once

namespace dsv4::cli {

// argv[0] is the first argument after the subcommand name.
int cmd_inspect(int argc, char** argv);
int cmd_make_tiny(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_serve(int argc, char** argv);

}  // namespace dsv4::cli
