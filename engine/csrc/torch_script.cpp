// TorchScript scripts for AI.SCRIPTSTORE / AI.SCRIPTEXECUTE: compiling source with libtorch's
// TorchScript compiler, describing a function's signature, and calling a function.
//
// A small C ABI over libtorch's C++ API (which `tch` does not expose), used by
// `engine/src/backend/torch_script.rs`. Tensors cross as `at::Tensor*`, the same handles `tch`
// uses: inputs are borrowed, outputs are new handles the caller owns. No C++ exception leaves
// this file: every entry point catches and returns the error's text (without libtorch's C++
// backtrace), which the caller frees with `shai_free_str`.

#include <torch/script.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/frontend/resolver.h>

#include <cstdlib>
#include <cstring>
#include <memory>
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

void set_error(char** err, const std::string& text) {
  if (err != nullptr) {
    *err = dup(text);
  }
}

// Argument kinds, as `torch_script.rs` numbers them.
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

}  // namespace

struct ShaiScript {
  std::shared_ptr<torch::jit::CompilationUnit> cu;
};

extern "C" {

void shai_free_str(char* s) { std::free(s); }

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

void shai_script_free(ShaiScript* s) { delete s; }

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

// Calls function `name` with `nargs` arguments described by `kinds` (as the signature gave
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
                        at::Tensor*** out, size_t* n_out, char** err) {
  try {
    torch::NoGradGuard no_grad;
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

void shai_free_tensors(at::Tensor** arr) { std::free(arr); }

}  // extern "C"
