#include "qemu-plugin/qmp_client.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <utility>

#include "common/log.hpp"
#include "common/socket.hpp"

namespace rmig::qemu {

using nlohmann::json;

namespace {

// QEMU's largest reply (query-qmp-schema) is a few hundred KiB; a line longer
// than this means we are not talking to QMP.
constexpr size_t kMaxLineBytes = size_t{64} << 20;

std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) return std::chrono::milliseconds(0);
    return std::chrono::ceil<std::chrono::milliseconds>(left);
}

// QEMU always sends strings here, but a malformed message must not escape as
// nlohmann's type_error.
std::string str_field(const json& obj, const char* key) {
    if (!obj.is_object()) return {};
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

QmpError::QmpError(const std::string& socket_path, const std::string& command,
                   const std::string& error_class, const std::string& desc)
    : Error(cat("QMP ", socket_path, ": '", command, "' failed: ", error_class, ": ", desc)),
      command_(command),
      class_(error_class),
      desc_(desc) {}

QmpClient::QmpClient(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)) {
    auto deadline = Clock::now() + timeout;
    fd_ = net::unix_connect(path_, timeout);
    Wait wait{deadline};
    auto greeting = read_message(wait, "the QMP greeting");
    if (!greeting)
        throw LinkError(cat("QMP ", path_, ": no greeting within ", timeout.count(),
                            " ms (is another client connected to this monitor?)"));
    try {
        const json& version = greeting->at("QMP").at("version").at("qemu");
        version_ = cat(version.at("major").get<int>(), '.', version.at("minor").get<int>(), '.',
                       version.at("micro").get<int>());
    } catch (const json::exception&) {
        throw ProtocolError(
            cat("QMP ", path_, ": expected a QMP greeting, got ", greeting->dump()));
    }
    greeting_ = std::move(*greeting);
    // Until this is acknowledged QEMU accepts no other command.
    execute("qmp_capabilities", {}, remaining(deadline));
}

json QmpClient::execute(const std::string& cmd, const json& args,
                        std::chrono::milliseconds timeout) {
    check_alive();
    Wait wait{Clock::now() + timeout};
    const uint64_t id = next_id_++;
    json request = {{"execute", cmd}, {"id", id}};
    if (!args.is_null() && !args.empty()) request["arguments"] = args;
    std::string line = request.dump() + "\n";
    try {
        net::write_full(fd_.get(), line.data(), line.size());
    } catch (const Error& e) {
        lost(cat("connection lost while sending '", cmd, "': ", e.what()));
    }

    for (;;) {
        auto msg = read_message(wait, cat("the reply to '", cmd, "'"));
        if (!msg)
            throw QmpTimeout(cat("QMP ", path_, ": no reply to '", cmd, "' within ",
                                timeout.count(), " ms"));
        if (msg->contains("event")) {
            queue_event(std::move(*msg));
            continue;
        }
        const bool is_error = msg->contains("error");
        if (!is_error && !msg->contains("return")) {
            log::debug("QMP ", path_, ": ignoring unexpected message ", msg->dump());
            continue;
        }
        // A reply carrying another id answers a command that timed out earlier.
        // QEMU omits the id only when it could not parse a request at all; with
        // one request in flight such an error can only be ours.
        auto it = msg->find("id");
        if (it != msg->end() ? *it != id : !is_error) {
            log::debug("QMP ", path_, ": dropping stale reply ", msg->dump());
            continue;
        }
        if (is_error) {
            const json& err = (*msg)["error"];
            throw QmpError(path_, cmd, str_field(err, "class"), str_field(err, "desc"));
        }
        return std::move((*msg)["return"]);
    }
}

std::string QmpClient::human(const std::string& hmp_command, std::chrono::milliseconds timeout) {
    json out = execute("human-monitor-command", {{"command-line", hmp_command}}, timeout);
    if (!out.is_string())
        throw ProtocolError(cat("QMP ", path_, ": HMP '", hmp_command,
                                "' returned a non-string: ", out.dump()));
    std::string text;
    for (char c : out.get<std::string>())
        if (c != '\r') text += c;
    return text;
}

std::vector<json> QmpClient::take_events() {
    std::vector<json> out(std::make_move_iterator(events_.begin()),
                          std::make_move_iterator(events_.end()));
    events_.clear();
    return out;
}

std::optional<json> QmpClient::wait_event(const std::string& name,
                                          std::chrono::milliseconds timeout) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (str_field(*it, "event") == name) {
            json ev = std::move(*it);
            events_.erase(it);
            return ev;
        }
    }
    check_alive();
    Wait wait{Clock::now() + timeout};
    for (;;) {
        auto msg = read_message(wait, cat("event ", name));
        if (!msg) return std::nullopt;
        if (!msg->contains("event")) {
            log::debug("QMP ", path_, ": dropping stale reply ", msg->dump());
            continue;
        }
        if (str_field(*msg, "event") == name) return msg;
        queue_event(std::move(*msg));
    }
}

std::optional<json> QmpClient::read_message(Wait& wait, const std::string& what) {
    for (;;) {
        auto nl = rx_.find('\n');
        if (nl != std::string::npos) {
            std::string line = rx_.substr(0, nl);
            rx_.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.find_first_not_of(" \t") == std::string::npos) continue;
            try {
                return json::parse(line);
            } catch (const json::parse_error& e) {
                throw ProtocolError(cat("QMP ", path_, ": bad JSON while waiting for ", what,
                                        " (", e.what(), "): ", line.substr(0, 200)));
            }
        }
        if (rx_.size() > kMaxLineBytes)
            throw ProtocolError(cat("QMP ", path_, ": line longer than ", kMaxLineBytes,
                                    " bytes while waiting for ", what));
        if (Clock::now() >= wait.deadline) {
            if (wait.read_after_deadline) return std::nullopt;
            wait.read_after_deadline = true;
        }
        if (!net::wait_readable(fd_.get(), remaining(wait.deadline))) return std::nullopt;
        char buf[16384];
        size_t n = 0;
        try {
            n = net::read_some(fd_.get(), buf, sizeof buf);
        } catch (const Error& e) {
            lost(cat("connection lost while waiting for ", what, ": ", e.what()));
        }
        if (n == 0) lost(cat("connection closed by QEMU while waiting for ", what));
        rx_.append(buf, n);
    }
}

void QmpClient::queue_event(json event) {
    events_.push_back(std::move(event));
    if (events_.size() > kMaxQueuedEvents) {
        events_.pop_front();
        ++dropped_events_;
    }
}

void QmpClient::lost(const std::string& why) {
    lost_reason_ = why;
    fd_ = UniqueFd();
    throw LinkError(cat("QMP ", path_, ": ", why));
}

void QmpClient::check_alive() const {
    if (!lost_reason_.empty()) throw LinkError(cat("QMP ", path_, ": ", lost_reason_));
    if (!fd_) throw LinkError(cat("QMP ", path_, ": not connected"));
}

std::unique_ptr<QmpClient> connect_qmp(const std::string& path, const std::string& which) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
        throw Error(cat("no QMP socket at ", path, " for the ", which,
                        " QEMU: start it with -qmp unix:", path, ",server=on,wait=off"));
    return std::make_unique<QmpClient>(path, std::chrono::seconds(5));
}

int QmpClient::peer_pid() const {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (!fd_ || ::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
    return cred.pid;
}

}  // namespace rmig::qemu
