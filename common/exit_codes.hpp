// Exit codes of the rmig programs (documented in `rmig help` and docs/usage.md).
#pragma once

namespace rmig::exit_code {
inline constexpr int kOk = 0;
inline constexpr int kFailed = 1;        // migration failed; the source guest keeps running
inline constexpr int kUsage = 2;         // bad arguments
inline constexpr int kRefused = 3;       // pre-migration checks refused; nothing was sent
inline constexpr int kSourceAtRisk = 4;  // failed, and the source could not be confirmed running
}  // namespace rmig::exit_code
