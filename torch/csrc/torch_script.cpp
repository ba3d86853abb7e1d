// TorchScript scripts for AI.SCRIPTSTORE / AI.SCRIPTEXECUTE: compiling source with libtorch's
// TorchScript compiler, describing a function's signature, and calling a function; and the
// `forward` parameter names of a saved module, for AI.MODELGET META.
//
// A small C ABI over libtorch's C++ API (which `tch` does not expose), used by
// `torch/src/script.rs`. It also registers the operators scripts call into the
// server with, `redis.execute`, `redis.asList` and `redisAI.model_execute`: they call back into
// Rust through the two functions `shai_set_callbacks` installs, with the context of the call
// in progress on this thread (set by `shai_script_run`). Tensors cross as `at::Tensor*`, the same handles `tch`
// uses: inputs are borrowed, outputs are new handles the caller owns. No C++ exception leaves
// this file: every entry point catches and returns the error's text (without libtorch's C++
// backtrace), which the caller frees with `shai_free_str`.

#include <torch/script.h>
#include <torch/library.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/frontend/resolver.h>

#include <stdexcept>

#include <cstdlib>
#include <cstring>
#include <istream>
#include <memory>
#include <streambuf>
#include <string>
#include <vector>

namespace {

// Names a script may use beyond its own definitions: `torch` (the aten builtins), and the
// `redis` / `redisAI` operator namespaces.
struct ScriptResolver : public torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name,
                                                         torch::jit::GraphFunction&,
                                                         const torch::jit::SourceRange&) override {
    if (name == "torch") {
      return std::make_shared<torch::jit::BuiltinModule>("aten");
    }
    if (name == "redis" || name == "redisAI") {
      return std::make_shared<torch::jit::BuiltinModule>(name);
    }
    return nullptr;
  }
  c10::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override {
    return nullptr;
  }
};

char* dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
  }
  return p;
}

// A read-only, seekable stream buffer over memory the caller owns.
struct MemoryBuf : std::streambuf {
  MemoryBuf(const char* data, size_t len) {
    char* p = const_cast<char*>(data);
    setg(p, p, p + len);
  }
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    char* target = dir == std::ios_base::beg   ? eback() + off
                   : dir == std::ios_base::cur ? gptr() + off
                                               : egptr() + off;
    if (target < eback() || target > egptr()) {
      return pos_type(off_type(-1));
    }
    setg(eback(), target, egptr());
    return pos_type(target - eback());
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode mode) override {
    return seekoff(off_type(pos), std::ios_base::beg, mode);
  }
};

void set_error(char** err, const std::string& text) {
  if (err != nullptr) {
    *err = dup(text);
  }
}

// Argument kinds, as the `kind` module of `shardai-torch-abi` numbers them.
enum ArgKind : int {
  KIND_TENSOR = 0,
  KIND_TENSOR_LIST = 1,
  KIND_STR_LIST = 2,
  KIND_INT = 3,
  KIND_FLOAT = 4,
  KIND_STR = 5,
  KIND_INT_LIST = 6,
  KIND_FLOAT_LIST = 7,
  KIND_OTHER = 8,
};

int kind_of(const c10::TypePtr& t) {
  switch (t->kind()) {
    case c10::TypeKind::TensorType:
      return KIND_TENSOR;
    case c10::TypeKind::IntType:
      return KIND_INT;
    case c10::TypeKind::FloatType:
      return KIND_FLOAT;
    case c10::TypeKind::StringType:
      return KIND_STR;
    case c10::TypeKind::ListType: {
      auto elem = t->expectRef<c10::ListType>().getElementType();
      switch (elem->kind()) {
        case c10::TypeKind::TensorType:
          return KIND_TENSOR_LIST;
        case c10::TypeKind::StringType:
          return KIND_STR_LIST;
        case c10::TypeKind::IntType:
          return KIND_INT_LIST;
        case c10::TypeKind::FloatType:
          return KIND_FLOAT_LIST;
        default:
          return KIND_OTHER;
      }
    }
    default:
      return KIND_OTHER;
  }
}

// Appends `v`'s tensors (a tensor, or lists and tuples of them) to `out`; false for anything
// else.
bool flatten(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor());
    return true;
  }
  if (v.isTensorList()) {
    for (const at::Tensor& t : v.toTensorVector()) {
      out.push_back(t);
    }
    return true;
  }
  if (v.isList()) {
    for (const c10::IValue& item : v.toListRef()) {
      if (!flatten(item, out)) {
        return false;
      }
    }
    return true;
  }
  if (v.isTuple()) {
    for (const c10::IValue& item : v.toTupleRef().elements()) {
      if (!flatten(item, out)) {
        return false;
      }
    }
    return true;
  }
  return false;
}

// Runs a command for a script: `argv` (the command then its arguments); the reply, RESP2
// encoded, is written with `shai_string_set` into `reply`. Returns 0, or 1 when the command
// could not be run at all (`reply` then holds why).
typedef int32_t (*ExecuteFn)(void* ctx, const char* const* argv, const size_t* lens, size_t argc,
                             void* reply);
// Runs the model at `key` on `inputs` (new handles the callee takes over), expecting
// `n_outputs` outputs: on success 0, each output handed to `shai_tensor_push(outputs, t)`;
// else 1 with `err` set.
typedef int32_t (*ModelFn)(void* ctx, const char* key, size_t key_len, at::Tensor* const* inputs,
                           size_t n_inputs, int64_t n_outputs, void* outputs, void* err);

ExecuteFn g_execute = nullptr;
ModelFn g_model = nullptr;
thread_local void* t_ctx = nullptr;

// Sets this thread's call context for the life of a script call.
struct ContextGuard {
  void* prev;
  explicit ContextGuard(void* ctx) : prev(t_ctx) { t_ctx = ctx; }
  ~ContextGuard() { t_ctx = prev; }
};

// A RESP2 reply as a TorchScript value: nil → None, strings → str, integers → int, arrays →
// lists; an error reply raises.
c10::IValue parse_reply(const std::string& s, size_t& i) {
  if (i >= s.size()) {
    throw std::runtime_error("Unexpected internal error");
  }
  const char type = s[i++];
  const size_t eol = s.find("\r\n", i);
  if (eol == std::string::npos) {
    throw std::runtime_error("Unexpected internal error");
  }
  const std::string line = s.substr(i, eol - i);
  i = eol + 2;
  switch (type) {
    case '+':
      return c10::IValue(line);
    case '-':
      throw std::runtime_error("Redis command returned an error: " + line);
    case ':':
      return c10::IValue(static_cast<int64_t>(std::stoll(line)));
    case '$': {
      const long long n = std::stoll(line);
      if (n < 0) {
        return c10::IValue();
      }
      std::string v = s.substr(i, static_cast<size_t>(n));
      i += static_cast<size_t>(n) + 2;
      return c10::IValue(std::move(v));
    }
    case '*': {
      const long long n = std::stoll(line);
      if (n < 0) {
        return c10::IValue();
      }
      c10::impl::GenericList list(c10::AnyType::get());
      for (long long k = 0; k < n; k++) {
        list.push_back(parse_reply(s, i));
      }
      return c10::IValue(std::move(list));
    }
    default:
      throw std::runtime_error("Unexpected internal error");
  }
}

// redis::execute(str cmd, str[] args) -> Any
void redis_execute(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  auto in = torch::jit::pop(*stack, 2);
  const std::string cmd = in[0].toStringRef();
  const auto args = in[1].toListRef();
  if (g_execute == nullptr || t_ctx == nullptr) {
    throw std::runtime_error("Redis command returned an error: no command can run here");
  }
  std::vector<std::string> owned;
  owned.reserve(args.size() + 1);
  owned.push_back(cmd);
  for (const c10::IValue& a : args) {
    owned.push_back(a.toStringRef());
  }
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const std::string& a : owned) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  std::string reply;
  if (g_execute(t_ctx, ptrs.data(), lens.data(), ptrs.size(), &reply) != 0) {
    throw std::runtime_error("Redis command returned an error: " + reply);
  }
  size_t i = 0;
  torch::jit::push(*stack, parse_reply(reply, i));
}

// redis::asList(Any value) -> Any[]
void redis_as_list(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  c10::IValue v = torch::jit::pop(*stack);
  if (!v.isList()) {
    throw std::runtime_error("redis.asList: the value is not a list");
  }
  torch::jit::push(*stack, std::move(v));
}

// redisAI::model_execute(str key, Tensor[] inputs, int num_outputs) -> Tensor[]
void model_execute(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  auto in = torch::jit::pop(*stack, 3);
  const std::string key = in[0].toStringRef();
  const std::vector<at::Tensor> inputs = in[1].toTensorVector();
  const int64_t n_outputs = in[2].toInt();
  if (g_model == nullptr || t_ctx == nullptr) {
    throw std::runtime_error("no model can run here");
  }
  std::vector<at::Tensor*> ptrs;
  for (const at::Tensor& t : inputs) {
    ptrs.push_back(new at::Tensor(t));
  }
  std::vector<at::Tensor*> out;
  std::string err;
  const int32_t rc = g_model(t_ctx, key.data(), key.size(), ptrs.data(), ptrs.size(), n_outputs,
                             &out, &err);
  c10::List<at::Tensor> outputs;
  for (at::Tensor* t : out) {
    outputs.push_back(std::move(*t));
    delete t;
  }
  if (rc != 0) {
    throw std::runtime_error(err);
  }
  torch::jit::push(*stack, std::move(outputs));
}

}  // namespace

// The operators reach outside the script (commands, models): CONSERVATIVE alias analysis
// tells the TorchScript compiler so, and it keeps every call, in order, even one whose result
// is unused (with the default, it would treat them as pure and drop such calls).
TORCH_LIBRARY(redis, m) {
  m.def(torch::schema("execute(str cmd, str[] args) -> Any", c10::AliasAnalysisKind::CONSERVATIVE),
        torch::CppFunction::makeFromBoxedFunction<&redis_execute>());
  m.def(torch::schema("asList(Any value) -> Any[]", c10::AliasAnalysisKind::CONSERVATIVE),
        torch::CppFunction::makeFromBoxedFunction<&redis_as_list>());
}

TORCH_LIBRARY(redisAI, m) {
  m.def(torch::schema("model_execute(str key, Tensor[] inputs, int num_outputs) -> Tensor[]",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        torch::CppFunction::makeFromBoxedFunction<&model_execute>());
}

struct ShaiScript {
  std::shared_ptr<torch::jit::CompilationUnit> cu;
};

extern "C" {

void shai_free_str(char* s) noexcept { std::free(s); }

// Installs the functions `redis.execute` and `redisAI.model_execute` call.
void shai_set_callbacks(ExecuteFn execute, ModelFn model) noexcept {
  g_execute = execute;
  g_model = model;
}

// Sets the `std::string` a callback was handed (its reply or error).
void shai_string_set(void* s, const char* data, size_t len) noexcept {
  try {
    static_cast<std::string*>(s)->assign(data, len);
  } catch (...) {
  }
}

// Hands a model callback's output tensor (a new handle) to the operator that called it.
void shai_tensor_push(void* v, at::Tensor* t) noexcept {
  try {
    static_cast<std::vector<at::Tensor*>*>(v)->push_back(t);
  } catch (...) {
    delete t;
  }
}

// Compiles `src`; null with `*err` set when it does not compile.
ShaiScript* shai_script_compile(const char* src, size_t len, char** err) {
  try {
    auto cu = std::make_shared<torch::jit::CompilationUnit>();
    cu->define(std::nullopt, std::string(src, len), std::make_shared<ScriptResolver>(), nullptr);
    return new ShaiScript{std::move(cu)};
  } catch (const c10::Error& e) {
    set_error(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(err, e.what());
  } catch (...) {
    set_error(err, "unknown error while compiling the script");
  }
  return nullptr;
}

void shai_script_free(ShaiScript* s) noexcept { delete s; }

// The parameter names of a saved TorchScript module's `forward` (without `self`), loaded on
// the CPU from `data`: written to `*names` as consecutive NUL-terminated strings (a malloc'd
// buffer of `*names_len` bytes the caller frees with `shai_free_str`). Returns the number of
// tensors `forward` declares it returns (a tuple's elements; 0 when a list or unknown), or -1
// with `*err` set when the module does not load.
int32_t shai_module_forward(const char* data, size_t len, char** names, size_t* names_len,
                            char** err) noexcept {
  try {
    // Read in place: a seekable stream over the caller's buffer, not a copy of the blob.
    MemoryBuf source(data, len);
    std::istream in(&source);
    auto module = torch::jit::load(in, c10::Device("cpu"));
    const auto& schema = module.get_method("forward").function().getSchema();
    std::string out;
    const auto& args = schema.arguments();
    for (size_t i = 1; i < args.size(); ++i) {
      out += args[i].name();
      out.push_back('\0');
    }
    int32_t outputs = 0;
    for (const auto& r : schema.returns()) {
      const auto& type = r.type();
      if (type->kind() == c10::TypeKind::TensorType) {
        outputs += 1;
      } else if (type->kind() == c10::TypeKind::TupleType) {
        outputs += static_cast<int32_t>(type->containedTypes().size());
      }
    }
    char* buf = static_cast<char*>(std::malloc(out.size() + 1));
    if (buf == nullptr) {
      set_error(err, "out of memory");
      return -1;
    }
    std::memcpy(buf, out.data(), out.size());
    *names = buf;
    *names_len = out.size();
    return outputs;
  } catch (const c10::Error& e) {
    set_error(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(err, e.what());
  } catch (...) {
    set_error(err, "unknown error while loading the module");
  }
  return -1;
}

// The number of parameters of function `name` (writing up to `max` of their kinds), or -1
// when the script defines no such function.
int64_t shai_script_signature(const ShaiScript* s, const char* name, int32_t* kinds,
                              size_t max) {
  try {
    torch::jit::Function* f = s->cu->find_function(c10::QualifiedName(name));
    if (f == nullptr) {
      return -1;
    }
    const auto& args = f->getSchema().arguments();
    for (size_t i = 0; i < args.size() && i < max; i++) {
      kinds[i] = kind_of(args[i].type());
    }
    return static_cast<int64_t>(args.size());
  } catch (...) {
    return -1;
  }
}

// Calls function `name` (with `ctx` as the context of the commands and models it runs) with
// `nargs` arguments described by `kinds` (as the signature gave
// them). Tensor arguments take `tensor_counts[i]` tensors in turn from `tensors` (one for a
// Tensor, any number for a List[Tensor]); every other argument takes `str_counts[i]` strings
// in turn from `strs` (one for a scalar, any number for a list), parsed as its type. Inputs
// are moved to `device` (`cpu`, `cuda:0`, ...) first. With `want_outputs` 0 the result is
// ignored; else it must be tensors (a tensor, or lists and tuples of them), and on success
// `*out` is set to `*n_out` new tensor handles (a malloc'd array; the caller frees it with
// `shai_free_tensors`, the handles with `tch`). Returns 0 on success, 2 when the result is not
// tensors, 1 with `*err` set on any other error.
int32_t shai_script_run(const ShaiScript* s, const char* name, const char* device,
                        const int32_t* kinds, size_t nargs, at::Tensor* const* tensors,
                        const size_t* tensor_counts, const char* const* strs,
                        const size_t* str_lens, const size_t* str_counts, int32_t want_outputs,
                        void* ctx, at::Tensor*** out, size_t* n_out, char** err) {
  try {
    torch::NoGradGuard no_grad;
    ContextGuard context(ctx);
    torch::jit::Function* f = s->cu->find_function(c10::QualifiedName(name));
    if (f == nullptr) {
      set_error(err, std::string("Function ") + name + " does not exist in the given script.");
      return 1;
    }
    const c10::Device dev(device);
    std::vector<c10::IValue> stack;
    stack.reserve(nargs);
    size_t ti = 0;
    size_t si = 0;
    auto str = [&](size_t i) { return std::string(strs[i], str_lens[i]); };
    for (size_t a = 0; a < nargs; a++) {
      switch (kinds[a]) {
        case KIND_TENSOR:
          stack.emplace_back(tensors[ti++]->to(dev));
          break;
        case KIND_TENSOR_LIST: {
          c10::List<at::Tensor> list;
          for (size_t j = 0; j < tensor_counts[a]; j++) {
            list.push_back(tensors[ti++]->to(dev));
          }
          stack.emplace_back(std::move(list));
          break;
        }
        case KIND_STR:
          stack.emplace_back(str(si++));
          break;
        case KIND_INT:
          stack.emplace_back(static_cast<int64_t>(std::stoll(str(si++))));
          break;
        case KIND_FLOAT:
          stack.emplace_back(std::stod(str(si++)));
          break;
        case KIND_STR_LIST: {
          c10::List<std::string> list;
          for (size_t j = 0; j < str_counts[a]; j++) {
            list.push_back(str(si++));
          }
          stack.emplace_back(std::move(list));
          break;
        }
        case KIND_INT_LIST: {
          c10::List<int64_t> list;
          for (size_t j = 0; j < str_counts[a]; j++) {
            list.push_back(std::stoll(str(si++)));
          }
          stack.emplace_back(std::move(list));
          break;
        }
        case KIND_FLOAT_LIST: {
          c10::List<double> list;
          for (size_t j = 0; j < str_counts[a]; j++) {
            list.push_back(std::stod(str(si++)));
          }
          stack.emplace_back(std::move(list));
          break;
        }
        default:
          set_error(err, "Unsupported argument type in AI.SCRIPTEXECUTE command");
          return 1;
      }
    }
    c10::IValue result = (*f)(std::move(stack));
    std::vector<at::Tensor> outputs;
    if (want_outputs != 0 && !flatten(result, outputs)) {
      return 2;
    }
    auto** arr = static_cast<at::Tensor**>(std::malloc(sizeof(at::Tensor*) * (outputs.size() + 1)));
    if (arr == nullptr) {
      set_error(err, "out of memory");
      return 1;
    }
    for (size_t i = 0; i < outputs.size(); i++) {
      arr[i] = new at::Tensor(std::move(outputs[i]));
    }
    *out = arr;
    *n_out = outputs.size();
    return 0;
  } catch (const c10::Error& e) {
    set_error(err, e.what_without_backtrace());
  } catch (const std::invalid_argument&) {
    set_error(err, "an argument is not a number of the type the function takes");
  } catch (const std::out_of_range&) {
    set_error(err, "an argument is out of range for the type the function takes");
  } catch (const std::exception& e) {
    set_error(err, e.what());
  } catch (...) {
    set_error(err, "unknown error while running the script");
  }
  return 1;
}

void shai_free_tensors(at::Tensor** arr) noexcept { std::free(arr); }

}  // extern "C"
