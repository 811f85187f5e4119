// Self-registration of pybind11 bindings: each concept's source file (parser, SDE step, ...)
// registers a function that adds its bindings, and the module's init calls them all. This keeps
// one concept per file and no central list to edit.
#pragma once

#include <pybind11/pybind11.h>

#include <utility>
#include <vector>

namespace vrlvr {

using Registrar = void (*)(pybind11::module_&);

// Function-local static: initialised on first use, so registration from static initialisers in
// other translation units is safe regardless of their order.
inline std::vector<std::pair<const char*, Registrar>>& registrars() {
  static std::vector<std::pair<const char*, Registrar>> list;
  return list;
}

struct RegisterBindings {
  RegisterBindings(const char* name, Registrar fn) { registrars().emplace_back(name, fn); }
};

inline void register_all(pybind11::module_& m) {
  pybind11::list names;
  for (auto& entry : registrars()) {
    entry.second(m);
    names.append(entry.first);
  }
  m.attr("registered") = names;
}

}  // namespace vrlvr

#define VRLVR_REGISTER_BINDINGS(name, fn) \
  static ::vrlvr::RegisterBindings vrlvr_register_bindings_##name(#name, fn)
