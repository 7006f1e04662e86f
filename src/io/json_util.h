// nlohmann::json throws; these wrappers turn parse errors into a Status that
// names the file, so no exception ever leaves our code.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "gemmarun/status.h"

namespace gemmarun {

Result<nlohmann::json> ParseJson(std::string_view text, const std::string& what);
Result<nlohmann::json> ParseJsonFile(const std::string& path);

}  // namespace gemmarun
