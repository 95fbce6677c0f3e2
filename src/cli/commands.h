#pragma once
// Each subcommand lives in its own cmd_<name>.cpp and receives the arguments after its name.
namespace skv::cli {

int cmd_generate(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_detokenize(int argc, char** argv);
int cmd_chat_template(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_bench_serve(int argc, char** argv);  // `swiftkv bench serve`, dispatched by cmd_bench
int cmd_convert(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_generate_data(int argc, char** argv);
int cmd_distill(int argc, char** argv);
int cmd_run_batch(int argc, char** argv);
int cmd_perplexity(int argc, char** argv);
int cmd_serve(int argc, char** argv);

}  // namespace skv::cli
