// Every file of tests/data/corrupt/ (tools/make_corrupt_corpus.py) given to the
// binary: exactly one `error: ...` line naming the problem, exit status 1, and
// nothing else on stderr (a sanitizer report or a second line fails the case).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "cli/cli_test.h"

namespace gemmarun {
namespace {

struct CorruptCase {
  std::string name;
  std::string args;
  std::string fragment;
};

std::string Substitute(std::string text, const std::string& key, const std::string& value) {
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size())) {
    text.replace(at, key.size(), value);
  }
  return text;
}

std::vector<CorruptCase> LoadCases() {
  const std::string data = testing::DataDir();
  std::ifstream in(data + "/corrupt/cases.tsv");
  std::vector<CorruptCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
    if (tab1 == std::string::npos || tab2 == std::string::npos) continue;
    std::string args = Substitute(line.substr(tab1 + 1, tab2 - tab1 - 1), "{corrupt}", data + "/corrupt");
    cases.push_back({line.substr(0, tab1), Substitute(args, "{data}", data), line.substr(tab2 + 1)});
  }
  return cases;
}

class CorruptCorpusTest : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(CorruptCorpusTest, OneErrorLineAndExitOne) {
  const CorruptCase& c = GetParam();
  const auto r = testing::RunGemmarun(c.args);
  EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(c.fragment), std::string::npos) << "expected '" << c.fragment << "' in: " << r.err;
}

TEST(CorruptCorpus, CorpusIsThere) { EXPECT_GE(LoadCases().size(), 50u); }

INSTANTIATE_TEST_SUITE_P(Cases, CorruptCorpusTest, ::testing::ValuesIn(LoadCases()),
                         [](const ::testing::TestParamInfo<CorruptCase>& info) { return info.param.name; });

}  // namespace
}  // namespace gemmarun
