#include "lab/memory_mix.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "common/error.hpp"

namespace rmig::lab {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = size_t{1} << 20;

// Reads files under `roots` (sorted, so the result is stable) matching
// `want`, and hands out their bytes block by block, starting over at the end.
class FileStream {
public:
    FileStream(std::vector<std::string> roots, bool (*want)(const fs::path&)) {
        for (const auto& root : roots) {
            std::error_code ec;
            for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
                 it != end; it.increment(ec)) {
                if (ec) break;
                std::error_code fec;
                if (it->is_regular_file(fec) && !it->is_symlink(fec) && want(it->path()))
                    files_.push_back(it->path().string());
            }
        }
        std::sort(files_.begin(), files_.end());
        if (files_.empty()) throw Error(cat("memory mix: no input files under ", roots.front()));
    }
    void fill(std::vector<char>& block) {
        size_t at = 0;
        for (int guard = 0; at < block.size() && guard < 100000; ++guard) {
            if (!in_.is_open() || !in_) {
                in_ = std::ifstream(files_[next_++ % files_.size()], std::ios::binary);
                continue;
            }
            in_.read(block.data() + at, static_cast<std::streamsize>(block.size() - at));
            at += static_cast<size_t>(in_.gcount());
            if (!in_) in_.close();
        }
        if (at < block.size()) throw Error("memory mix: input files are all empty");
    }

private:
    std::vector<std::string> files_;
    size_t next_ = 0;
    std::ifstream in_;
};

bool is_text(const fs::path& p) {
    auto e = p.extension().string();
    return e == ".h" || e == ".hpp" || e == ".txt" || e == ".html" || e == ".md" || e == ".py" || e == ".pm" ||
           p.filename() == "copyright";
}

bool is_library(const fs::path& p) { return p.filename().string().find(".so") != std::string::npos; }

}  // namespace

void write_memory_mix(const std::string& path, uint64_t bytes, const MemoryMix& mix) {
    if (bytes % kBlock) throw Error("memory mix: the size must be a multiple of 1 MiB");
    FileStream text({"/usr/include", "/usr/share/doc", "/usr/share/perl5"}, is_text);
    FileStream binary({"/usr/lib/x86_64-linux-gnu", "/usr/lib"}, is_library);
    std::mt19937_64 rng(20261203);
    // The kinds dealt round-robin by remaining share, so each recurs evenly
    // rather than in runs: "btrzbtrzbtrzbtrzbtbb" for the default mix.
    std::string kinds;
    int left[4] = {mix.binary, mix.text, mix.random, mix.zero};
    const char names[4] = {'b', 't', 'r', 'z'};
    while (left[0] + left[1] + left[2] + left[3] > 0)
        for (int k = 0; k < 4; ++k)
            if (left[k] > 0) kinds += names[k], --left[k];
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(cat("memory mix: cannot write ", path));
    std::vector<char> block(kBlock);
    for (uint64_t i = 0; i < bytes / kBlock; ++i) {
        switch (kinds[i % kinds.size()]) {
        case 'b': binary.fill(block); break;
        case 't': text.fill(block); break;
        case 'r':
            for (size_t j = 0; j < block.size(); j += 8) {
                uint64_t v = rng();
                std::copy_n(reinterpret_cast<const char*>(&v), 8, block.data() + j);
            }
            break;
        default: std::fill(block.begin(), block.end(), '\0'); break;
        }
        out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
    if (!out.flush()) throw Error(cat("memory mix: writing ", path, " failed"));
}

}  // namespace rmig::lab
