#!/usr/bin/env bash
# The man pages (man/) against the code, so they cannot drift from it:
#  - every page renders with groff's warnings on and none is printed;
#  - every subcommand `rmig help` lists has its page man/rmig-SUBCMD.1, and
#    rmig(1) names it;
#  - every long option `rmig help SUBCMD` prints appears in that page;
#  - every function rmig.h declares appears in rmig(3).
# A new option in cli/options.cpp (or a new subcommand) fails this test until
# its page says what it does.
# Usage: man_pages_test.sh RMIG_BINARY MAN_DIR RMIG_H
set -euo pipefail
rmig=$1
mandir=$2
header=$3
command -v man >/dev/null || { echo "FAIL: man (man-db) is not installed: scripts/deps.sh installs it" >&2; exit 1; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# The page as a reader sees it, one line per line, dashes as typed. MANWIDTH
# fixes the width (the warnings depend on it); 80 is what man uses off a tty.
render() { MANWIDTH=80 man -E UTF-8 -l "$1" 2>/dev/null | sed 's/\xe2\x88\x92/-/g; s/\xe2\x80\x90/-/g'; }

pages=("$mandir"/*.[1-8])
[ -e "${pages[0]}" ] || { echo "FAIL: no man pages in $mandir" >&2; exit 1; }
for page in "${pages[@]}"; do
  warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null) ||
    fail "$(basename "$page"): man exited nonzero"
  [ -z "$warnings" ] || fail "$(basename "$page") renders with warnings:"$'\n'"$warnings"
done
echo "rendered ${#pages[@]} pages"

# Subcommands: the lines of `rmig help` between "commands:" and the next blank line.
help=$("$rmig" help)
mapfile -t subcommands < <(awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {print $1}' <<<"$help" |
                           grep -vxE 'version|help')
[ ${#subcommands[@]} -gt 0 ] || { echo "FAIL: found no subcommands in 'rmig help':"$'\n'"$help" >&2; exit 1; }
overview=$(render "$mandir/rmig.1")
for sub in "${subcommands[@]}"; do
  page=$mandir/rmig-$sub.1
  grep -qF "rmig-$sub(1)" <<<"$overview" || fail "rmig.1 does not name rmig-$sub(1)"
  if [ ! -f "$page" ]; then
    fail "'rmig $sub' has no man page: write man/rmig-$sub.1 (see man/rmig-migrate.1)"
    continue
  fi
  text=$(render "$page")
  # Option lines of the help: two spaces, then --name.
  mapfile -t options < <("$rmig" help "$sub" | sed -n 's/^  \(--[a-z0-9][a-z0-9-]*\).*/\1/p' | sort -u)
  [ ${#options[@]} -gt 0 ] || fail "'rmig help $sub' lists no options"
  missing=()
  for opt in "${options[@]}"; do
    grep -qE -- "(^|[^a-z0-9-])$opt([^a-z0-9-]|\$)" <<<"$text" || missing+=("$opt")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    fail "man/rmig-$sub.1 lacks ${missing[*]} (printed by 'rmig help $sub')"
  else
    echo "rmig-$sub.1: all ${#options[@]} options of 'rmig help $sub'"
  fi
done

# The C API: every function declared in rmig.h, as name( in rmig(3).
api=$(render "$mandir/rmig.3")
mapfile -t functions < <(grep -oE '\brmig_[a-z_]+\(' "$header" | tr -d '(' | sort -u)
[ ${#functions[@]} -gt 0 ] || fail "no functions found in $header"
missing=()
for f in "${functions[@]}"; do
  grep -qF "$f(" <<<"$api" || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  fail "man/rmig.3 lacks ${missing[*]} (declared in rmig.h)"
else
  echo "rmig.3: all ${#functions[@]} functions of rmig.h"
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "ok: man pages render cleanly and cover every subcommand, option and C API function"
