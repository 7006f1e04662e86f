// The launches of one forward pass, recorded instead of enqueued, so that the
// backend can replay a CUDA graph of an identical earlier pass. A record is the
// launcher (a plain function ending in a cudaStream_t) and the bytes of its
// arguments, converted to the launcher's parameter types; two passes are the
// same graph exactly when their logs are equal byte for byte (device pointers,
// sizes and scalars alike: data that varies from pass to pass lives in staged
// device memory, never in an argument).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace gemmarun::cuda {

class LaunchLog {
 public:
  // Records fn(args..., stream); every argument must be trivially copyable once
  // converted (pointers, integers, floats, enums, plain structs whose padding is
  // zero, such as value-initialized aggregates).
  template <class Fn, class... A>
  void Add(Fn* fn, const A&... args) {
    using Stored = typename Params<Fn>::Stored;
    static_assert(std::tuple_size_v<Stored> == sizeof...(A), "wrong number of launch arguments");
    const Thunk thunk = &Run<Fn>;
    Append(&thunk, sizeof thunk);
    Append(&fn, sizeof fn);
    AppendAll<Stored>(std::make_index_sequence<sizeof...(A)>{}, args...);
  }

  // Enqueues every recorded launch on `stream`, in order.
  void Replay(cudaStream_t stream) const {
    const uint8_t* p = bytes_.data();
    const uint8_t* end = p + bytes_.size();
    while (p < end) {
      Thunk thunk;
      std::memcpy(&thunk, p, sizeof thunk);
      p = thunk(p + sizeof thunk, stream);
    }
  }

  bool empty() const { return bytes_.empty(); }
  void Clear() { bytes_.clear(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  bool operator==(const LaunchLog& other) const { return bytes_ == other.bytes_; }

 private:
  using Thunk = const uint8_t* (*)(const uint8_t*, cudaStream_t);

  // The launcher's parameters without the trailing stream, decayed for storage.
  template <class Fn>
  struct Params;
  template <class... P>
  struct Params<void(P...)> {
    using All = std::tuple<std::decay_t<P>...>;
    template <size_t... I>
    static auto DropLast(std::index_sequence<I...>) -> std::tuple<std::tuple_element_t<I, All>...>;
    using Stored = decltype(DropLast(std::make_index_sequence<sizeof...(P) - 1>{}));
  };

  template <class Fn>
  static const uint8_t* Run(const uint8_t* p, cudaStream_t stream) {
    Fn* fn;
    std::memcpy(&fn, p, sizeof fn);
    p += sizeof fn;
    typename Params<Fn>::Stored values;
    std::apply([&p](auto&... v) { ((std::memcpy(&v, p, sizeof v), p += sizeof v), ...); }, values);
    std::apply([&](auto&... v) { fn(v..., stream); }, values);
    return p;
  }

  template <class Stored, size_t... I, class... A>
  void AppendAll(std::index_sequence<I...>, const A&... args) {
    (AppendAs<std::tuple_element_t<I, Stored>>(args), ...);
  }
  template <class T, class A>
  void AppendAs(const A& arg) {
    static_assert(std::is_trivially_copyable_v<T>, "launch arguments are stored as bytes");
    const T& value = arg;  // binds to arg itself when it already has the parameter's type
    Append(&value, sizeof(T));
  }
  void Append(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), bytes, bytes + size);
  }

  std::vector<uint8_t> bytes_;
};

}  // namespace gemmarun::cuda
