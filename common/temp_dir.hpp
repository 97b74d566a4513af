// Private temporary directories (mode 0700) for sockets and scratch files,
// under $TMPDIR or /tmp, removed with everything in them on destruction.
#pragma once

#include <string>

namespace rmig {

std::string temp_base();  // $TMPDIR, else /tmp

class TempDir {
public:
    // Creates <parent or temp_base()>/<prefix>-XXXXXX.
    explicit TempDir(const std::string& prefix, const std::string& parent = "");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    void keep() { keep_ = true; }  // leave it behind (e.g. logs of a failed run)

private:
    std::string path_;
    bool keep_ = false;
};

}  // namespace rmig
