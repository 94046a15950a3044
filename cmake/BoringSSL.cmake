# Finds BoringSSL and defines the imported targets mailtls::boringssl_ssl and
# mailtls::boringssl_crypto, plus MAILTLS_BORINGSSL_LIBDIR (used for rpaths).
if(MAILTLS_BORINGSSL_ROOT)
  set(_bssl_inc_hints "${MAILTLS_BORINGSSL_ROOT}/include")
  set(_bssl_lib_hints "${MAILTLS_BORINGSSL_ROOT}/lib" "${MAILTLS_BORINGSSL_ROOT}/build"
      "${MAILTLS_BORINGSSL_ROOT}/build/ssl" "${MAILTLS_BORINGSSL_ROOT}/build/crypto")
  set(_bssl_names_ssl ssl)
  set(_bssl_names_crypto crypto)
else()
  execute_process(COMMAND gcc -print-multiarch OUTPUT_VARIABLE _multiarch
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT _multiarch)
    set(_multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
  endif()
  set(_bssl_inc_hints /usr/include/android)
  set(_bssl_lib_hints /usr/lib/${_multiarch}/android /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
  set(_bssl_names_ssl libssl.so.0 ssl)
  set(_bssl_names_crypto libcrypto.so.0 crypto)
endif()

find_path(MAILTLS_BORINGSSL_INCLUDE_DIR openssl/is_boringssl.h
          HINTS ${_bssl_inc_hints} NO_DEFAULT_PATH)
find_library(MAILTLS_BORINGSSL_SSL NAMES ${_bssl_names_ssl} HINTS ${_bssl_lib_hints} NO_DEFAULT_PATH)
find_library(MAILTLS_BORINGSSL_CRYPTO NAMES ${_bssl_names_crypto} HINTS ${_bssl_lib_hints} NO_DEFAULT_PATH)

if(NOT MAILTLS_BORINGSSL_INCLUDE_DIR OR NOT MAILTLS_BORINGSSL_SSL OR NOT MAILTLS_BORINGSSL_CRYPTO)
  message(FATAL_ERROR "BoringSSL not found. On Debian: apt-get install android-libboringssl-dev; "
                      "or set MAILTLS_BORINGSSL_ROOT to your own BoringSSL build.")
endif()
get_filename_component(MAILTLS_BORINGSSL_LIBDIR "${MAILTLS_BORINGSSL_SSL}" DIRECTORY)
message(STATUS "BoringSSL: ${MAILTLS_BORINGSSL_INCLUDE_DIR}, ${MAILTLS_BORINGSSL_SSL}")

add_library(mailtls::boringssl_crypto SHARED IMPORTED)
set_target_properties(mailtls::boringssl_crypto PROPERTIES
  IMPORTED_LOCATION "${MAILTLS_BORINGSSL_CRYPTO}"
  INTERFACE_INCLUDE_DIRECTORIES "${MAILTLS_BORINGSSL_INCLUDE_DIR}")
add_library(mailtls::boringssl_ssl SHARED IMPORTED)
set_target_properties(mailtls::boringssl_ssl PROPERTIES
  IMPORTED_LOCATION "${MAILTLS_BORINGSSL_SSL}"
  INTERFACE_INCLUDE_DIRECTORIES "${MAILTLS_BORINGSSL_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES mailtls::boringssl_crypto)
# Programs find BoringSSL's libraries, which are off the default search path, through an rpath.
set(CMAKE_BUILD_RPATH "${MAILTLS_BORINGSSL_LIBDIR}")
