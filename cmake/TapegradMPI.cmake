# TapegradMPI.cmake: resolves TG_MPI (AUTO, ON, OFF) into TAPEGRAD_HAVE_MPI and, when on, the
# imported target MPI::MPI_C (found by CMake's FindMPI). Only the distributed module
# (src/dist/dist.c) uses MPI; a build without it answers every tg_dist_* call with TG_ENOTSUP
# and loses nothing else.
string(TOUPPER "${TG_MPI}" _tg_mpi)
set(TAPEGRAD_HAVE_MPI OFF)
if(_tg_mpi STREQUAL "AUTO")
    find_package(MPI QUIET COMPONENTS C)
    if(MPI_C_FOUND)
        set(TAPEGRAD_HAVE_MPI ON)
        message(STATUS "tapegrad: distributed training on (MPI ${MPI_C_VERSION})")
    else()
        message(STATUS "tapegrad: distributed training off: no MPI found (install "
                       "libopenmpi-dev and openmpi-bin; tg_dist_* will return TG_ENOTSUP)")
    endif()
elseif(TG_MPI)
    find_package(MPI QUIET COMPONENTS C)
    if(NOT MPI_C_FOUND)
        message(FATAL_ERROR "tapegrad: TG_MPI=ON but find_package(MPI COMPONENTS C) found no "
                            "MPI; install libopenmpi-dev and openmpi-bin (Debian) or configure "
                            "with -DTG_MPI=AUTO or OFF")
    endif()
    set(TAPEGRAD_HAVE_MPI ON)
    message(STATUS "tapegrad: distributed training on (MPI ${MPI_C_VERSION})")
else()
    message(STATUS "tapegrad: distributed training off (TG_MPI=${TG_MPI})")
endif()
unset(_tg_mpi)

# tapegrad_use_mpi(<target>): compiles <target> with TG_HAVE_MPI=1 and links it to MPI,
# privately, when MPI is on; does nothing otherwise.
function(tapegrad_use_mpi target)
    if(TAPEGRAD_HAVE_MPI)
        target_compile_definitions(${target} PRIVATE TG_HAVE_MPI=1)
        target_link_libraries(${target} PRIVATE MPI::MPI_C)
    endif()
endfunction()
