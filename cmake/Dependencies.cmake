# Every third-party library comes from Debian 12 packages (scripts/install-deps).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(nlohmann_json REQUIRED)
# OpenSSL: TLS, and the connector ID's PKCS#12 loader (fuzzed, so also in the fuzz build).
find_package(OpenSSL 3 REQUIRED)
if(NOT BRIDGEHEAD_FUZZ)
  find_package(Boost 1.81.0 EXACT REQUIRED CONFIG COMPONENTS system)
  find_package(spdlog REQUIRED)
  find_package(CLI11 REQUIRED)
  find_package(GTest REQUIRED)
endif()
# tl::expected ships a header only (/usr/include/tl/expected.hpp) without a CMake package.
find_path(TL_EXPECTED_INCLUDE_DIR tl/expected.hpp REQUIRED)
# GMime 3 parses and re-encodes MIME (8-bit to 7-bit downgrade); also in the fuzz build.
pkg_check_modules(GMIME REQUIRED IMPORTED_TARGET gmime-3.0)
# OpenLDAP's libldap and liblber (libldap-dev): the LDAP client of directory/ldap.
if(NOT BRIDGEHEAD_FUZZ)
  pkg_check_modules(LDAP REQUIRED IMPORTED_TARGET ldap lber)
  # SQLite 3 (libsqlite3-dev): directory synchronization's state (directory/sync).
  find_package(SQLite3 REQUIRED)
endif()
