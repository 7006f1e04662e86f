// The chat prompt as people use it: scripted (one answer line per message, a
// refused message alone, /save and /load) and on a terminal (line editing,
// history, multi-line input, /commands, Ctrl-D), the latter driven through tmux.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/cli_test.h"
#include "cli/text_model.h"
#include "testing/random_model.h"
#include "testing/temp_dir.h"

namespace gemmarun {
namespace {

using testing::DataDir;
using testing::ExpectErrorLine;
using testing::RunGemmarun;
using testing::TempDir;
namespace fs = std::filesystem;

// Gemma 2 layout with the real 256000-token vocabulary, so prompts are text.
class ChatPromptTest : public testing::TextModelSuite {};

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  size_t start = 0;
  while (start < out.size()) {
    const size_t end = out.find('\n', start);
    lines.push_back(nlohmann::json::parse(out.substr(start, end - start), nullptr, false));
    start = end == std::string::npos ? out.size() : end + 1;
  }
  return lines;
}

TEST_F(ChatPromptTest, ARefusedMessageGetsItsAnswerLineAndTheChatGoesOn) {
  std::string too_long;
  for (int i = 0; i < 60; ++i) too_long += "word ";
  // Invalid UTF-8, a turn too long for the 48-token context, an unknown command, then a normal message.
  auto r = RunGemmarun("chat --json -n 2 -c 48" + Model(), "\xff\xfe oops\n" + too_long + "\n/frobnicate\nHello there!\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = JsonLines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(lines[i]["stop_reason"], "refused") << i;
    EXPECT_EQ(lines[i]["text"], "") << i;
  }
  EXPECT_NE(lines[0]["error"].get<std::string>().find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(lines[1]["error"].get<std::string>().find("the conversation is full"), std::string::npos);
  EXPECT_NE(lines[2]["error"].get<std::string>().find("unknown command '/frobnicate'"), std::string::npos);
  // The refusals left the conversation empty: the last message is a first turn (12 tokens).
  EXPECT_EQ(lines[3]["prefilled_tokens"], 12);
  // Plain output: one (empty) line for the refused message.
  auto plain = RunGemmarun("chat -n 2 -c 48" + Model(), too_long + "\n");
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "\n");
  EXPECT_NE(plain.err.find("error: the conversation is full"), std::string::npos) << plain.err;
}

TEST_F(ChatPromptTest, NoTurnThatCanEverFitIsAnError) {
  std::string system;
  for (int i = 0; i < 80; ++i) system += "rule ";
  ExpectErrorLine(RunGemmarun("chat --chat-template gemma3 -c 64 -s '" + system + "'" + Model(), "hi\n"),
                  "no message can ever fit");
  // A system prompt the template cannot take is refused before the first message too.
  ExpectErrorLine(RunGemmarun("chat -s 'be brief'" + Model(), "hi\n"), "System role not supported");
}

TEST_F(ChatPromptTest, ChatTemplateOverride) {
  // none: the message as typed after <bos> ("Hello" is one token); gemma3 takes a system prompt.
  auto none = JsonLines(RunGemmarun("chat --json -n 1 --chat-template none" + Model(), "Hello\n").out);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0]["prefilled_tokens"], 2);
  auto gemma3 = RunGemmarun("chat --json -n 1 --chat-template gemma3 -s 'be brief'" + Model(), "Hello\n");
  ASSERT_EQ(gemma3.exit_code, 0) << gemma3.err;
  // "<bos><start_of_turn>user\nbe brief\n\nHello<end_of_turn>\n<start_of_turn>model\n", as HF renders Gemma 3's.
  const int want = static_cast<int>(
      nlohmann::json::parse(RunGemmarun("tokenize --json" + Model(),
                                        "<bos><start_of_turn>user\nbe brief\n\nHello<end_of_turn>\n"
                                        "<start_of_turn>model\n")
                                .out)["ids"]
          .size());
  EXPECT_EQ(JsonLines(gemma3.out)[0]["prefilled_tokens"], want);
}

TEST_F(ChatPromptTest, SaveThenLoadContinuesTheConversation) {
  TempDir dir;
  const std::string saved = dir.file("chat.json");
  auto first = RunGemmarun("chat --json -n 3" + Model(), "Hello there!\n/save " + saved + "\n");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto conversation = nlohmann::json::parse(testing::ReadAll(saved));
  ASSERT_EQ(conversation["messages"].size(), 2u) << conversation.dump();
  EXPECT_EQ(conversation["messages"][0]["role"], "user");
  EXPECT_EQ(conversation["messages"][0]["content"], "Hello there!");
  EXPECT_EQ(conversation["messages"][1]["role"], "model");
  EXPECT_EQ(conversation["messages"][1]["content"], JsonLines(first.out)[0]["text"]);
  // After /load the next message is a later turn: only its own 17 tokens are prefilled
  // ("<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n").
  const std::string resaved = dir.file("again.json");
  auto second = RunGemmarun("chat --json -n 3" + Model(), "/load " + saved + "\nWhat is 2+2?\n/save " + resaved + "\n");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  const auto turns = JsonLines(second.out);
  ASSERT_EQ(turns.size(), 1u) << second.out;
  EXPECT_EQ(turns[0]["prefilled_tokens"], 17);
  const auto again = nlohmann::json::parse(testing::ReadAll(resaved));
  ASSERT_EQ(again["messages"].size(), 4u);
  EXPECT_EQ(again["messages"][0], conversation["messages"][0]);
  EXPECT_EQ(again["messages"][2]["content"], "What is 2+2?");
  // A broken file is an error line and the chat goes on.
  std::ofstream(dir.file("bad.json")) << "[1, 2]";
  auto bad = RunGemmarun("chat --json -n 1" + Model(), "/load " + dir.file("bad.json") + "\nHi\n");
  EXPECT_EQ(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("error: /load " + dir.file("bad.json") + ": expected a JSON object"), std::string::npos)
      << bad.err;
  EXPECT_EQ(JsonLines(bad.out).size(), 1u);
}

TEST_F(ChatPromptTest, MultiLineInputIsOneMessage) {
  TempDir dir;
  const std::string saved = dir.file("chat.json");
  auto r = RunGemmarun("chat --json -n 1" + Model(),
                       "first line\\\nsecond line\n\"\"\"\nin a\nblock\n\"\"\"\n//slash\n/save " + saved + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(JsonLines(r.out).size(), 3u) << r.out;
  const auto messages = nlohmann::json::parse(testing::ReadAll(saved))["messages"];
  ASSERT_EQ(messages.size(), 6u);
  EXPECT_EQ(messages[0]["content"], "first line\nsecond line");
  EXPECT_EQ(messages[2]["content"], "in a\nblock");
  EXPECT_EQ(messages[4]["content"], "/slash");
}

// A terminal in a private tmux server, read by polling its screen.
class Terminal {
 public:
  explicit Terminal(const std::string& command)
      : socket_("gr_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++)) {
    started_ = Tmux("new-session -d -x 160 -y 50 -s chat " + Quote(command + "; echo EXIT=$?; sleep 600")) == 0;
  }
  ~Terminal() { Tmux("kill-server"); }
  bool started() const { return started_; }
  void Type(const std::string& text) { Tmux("send-keys -t chat -l " + Quote(text)); }
  void Keys(const std::string& keys) { Tmux("send-keys -t chat " + keys); }
  std::string Screen() {
    TempDir dir;
    Tmux("capture-pane -p -t chat -S -500 > " + dir.file("screen"));
    return testing::ReadAll(dir.file("screen"));
  }
  // Polls until `text` is on the screen `count` times; a hung binary fails after 60 s.
  // (capture-pane drops trailing spaces: a fresh prompt reads ">".)
  bool WaitFor(const std::string& text, int count = 1) {
    for (int poll = 0; poll < 600; ++poll) {
      const std::string screen = Screen();
      int found = 0;
      for (size_t at = screen.find(text); at != std::string::npos; at = screen.find(text, at + 1)) ++found;
      if (found >= count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  static std::string Quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }
  int Tmux(const std::string& args) { return std::system(("tmux -L " + socket_ + " " + args).c_str()); }

  static inline int counter_ = 0;
  std::string socket_;
  bool started_ = false;
};

bool HaveTmux() { return std::system("tmux -V > /dev/null 2>&1") == 0; }

TEST_F(ChatPromptTest, TerminalEditingHistoryMultiLineAndCommands) {
  if (!HaveTmux()) GTEST_SKIP() << "tmux is not installed (apt-get install tmux)";
  TempDir dir;
  const std::string saved = dir.file("chat.json");
  Terminal terminal(std::string(GR_BINARY_PATH) + " chat -n 2" + Model());
  ASSERT_TRUE(terminal.started());
  ASSERT_TRUE(terminal.WaitFor("/help lists the commands")) << terminal.Screen();
  // Editing: "helo", cursor left once, insert "l".
  terminal.Type("helo");
  terminal.Keys("Left");
  terminal.Type("l");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("\n>", 2)) << terminal.Screen();
  // History: the previous message comes back with the up arrow, then is extended.
  terminal.Keys("Up");
  terminal.Type(" again");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("\n>", 3)) << terminal.Screen();
  // Multi-line: a trailing backslash, then a """ block.
  terminal.Type("one\\");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("\n...")) << terminal.Screen();
  terminal.Type("two");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("\n>", 4)) << terminal.Screen();
  terminal.Type("\"\"\"");
  terminal.Keys("Enter");
  terminal.Type("in a");
  terminal.Keys("Enter");
  terminal.Type("block\"\"\"");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("\n>", 5)) << terminal.Screen();
  terminal.Type("/frobnicate");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("error: unknown command '/frobnicate'")) << terminal.Screen();
  terminal.Type("/help");
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("/load FILE")) << terminal.Screen();
  terminal.Type("/save " + saved);
  terminal.Keys("Enter");
  ASSERT_TRUE(terminal.WaitFor("(saved to")) << terminal.Screen();
  terminal.Keys("C-d");
  ASSERT_TRUE(terminal.WaitFor("EXIT=0")) << terminal.Screen();
  // Ctrl-D left the shell's next line clean: EXIT=0 starts a line of its own.
  EXPECT_NE(terminal.Screen().find("\nEXIT=0"), std::string::npos) << terminal.Screen();

  const auto messages = nlohmann::json::parse(testing::ReadAll(saved))["messages"];
  ASSERT_EQ(messages.size(), 8u) << messages.dump();
  EXPECT_EQ(messages[0]["content"], "hello");
  EXPECT_EQ(messages[2]["content"], "hello again");
  EXPECT_EQ(messages[4]["content"], "one\ntwo");
  EXPECT_EQ(messages[6]["content"], "in a\nblock");
}

}  // namespace
}  // namespace gemmarun
