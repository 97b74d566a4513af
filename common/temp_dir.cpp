#include "common/temp_dir.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.hpp"

namespace rmig {

std::string temp_base() {
    const char* t = std::getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

TempDir::TempDir(const std::string& prefix, const std::string& parent) {
    std::string tmpl = (parent.empty() ? temp_base() : parent) + "/" + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw_errno(cat("cannot create a directory ", tmpl));
    path_ = tmpl;
}

TempDir::~TempDir() {
    if (keep_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

}  // namespace rmig
