# Run by `cmake --install` (install(SCRIPT) in libmailtls/CMakeLists.txt),
# after values.cmake from the build tree: writes mailtls.pc and
# libmailtls.la for the prefix being installed to and installs them.  Both
# name absolute directories, and `cmake --install --prefix P` decides the
# prefix only now.  DESTDIR is honoured by file(INSTALL) and is not part of
# the files' contents.

foreach(_v INCLUDEDIR LIBDIR PKGCONFIGDIR)
  if(IS_ABSOLUTE "${MAILTLS_${_v}}")
    set(MAILTLS_PC_${_v} "${MAILTLS_${_v}}")
    set(MAILTLS_FULL_${_v} "${MAILTLS_${_v}}")
  else()
    set(MAILTLS_PC_${_v} "\${prefix}/${MAILTLS_${_v}}")
    set(MAILTLS_FULL_${_v} "${CMAKE_INSTALL_PREFIX}/${MAILTLS_${_v}}")
  endif()
endforeach()
set(MAILTLS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")

# One scratch directory per destination, so that installs of one build tree
# to several prefixes at once (the packaging tests) do not mix their files.
string(MD5 _mailtls_key "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(_mailtls_out "${MAILTLS_GEN_DIR}/${_mailtls_key}")
configure_file("${MAILTLS_SOURCE_DIR}/cmake/mailtls.pc.in" "${_mailtls_out}/mailtls.pc" @ONLY)
file(INSTALL DESTINATION "${MAILTLS_FULL_PKGCONFIGDIR}" TYPE FILE FILES "${_mailtls_out}/mailtls.pc")
if(MAILTLS_INSTALL_LA)
  configure_file("${MAILTLS_SOURCE_DIR}/cmake/libmailtls.la.in" "${_mailtls_out}/libmailtls.la" @ONLY)
  file(INSTALL DESTINATION "${MAILTLS_FULL_LIBDIR}" TYPE FILE FILES "${_mailtls_out}/libmailtls.la")
endif()
