#pragma once
// Resumable distillation state: trainable parameters, AdamW moments and step, and a JSON
// record of the schedule, data position and the settings that must not change on --resume.
// One file, written atomically (io/atomic_file.h), so a crash at any moment leaves either the
// previous checkpoint or the new one, never a mix.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace skv::train {

struct TrainState {
  nlohmann::json meta;  // step, total_steps, data cursor, settings fingerprint, ...
  std::vector<float> params, adam_m, adam_v;
};

// Writes dir/state.bin (creating dir if needed).
void save_train_state(const std::string& dir, const TrainState& s);
// Reads dir/state.bin; throws naming the file on a missing, truncated or corrupt checkpoint.
TrainState load_train_state(const std::string& dir);
bool train_state_exists(const std::string& dir);
std::string train_state_path(const std::string& dir);

}  // namespace skv::train
