#include "io/json_util.h"

#include "io/mapped_file.h"

namespace gemmarun {

Result<nlohmann::json> ParseJson(std::string_view text, const std::string& what) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Corrupt(what + ": not well-formed JSON");
  return json;
}

Result<nlohmann::json> ParseJsonFile(const std::string& path) {
  GR_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseJson(text, path);
}

}  // namespace gemmarun
