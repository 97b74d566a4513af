// The owner of the tests' shared precompiled header (tests/CMakeLists.txt,
// rmig_test_pch): every rmig_add_test target reuses it, so gtest and the
// standard headers most tests include are parsed once per build, not once per
// test file. An executable, not an object library, so that it is compiled with
// the tests' -fPIE (a header precompiled with -fPIC is refused).
int main() { return 0; }
