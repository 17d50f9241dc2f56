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

# For a static libtapegrad.a, tapegrad.pc must name MPI for the consumer's link line: the
# implementation's own pkg-config module when it has one (Open MPI: ompi-c; MPICH: mpich),
# in TAPEGRAD_MPI_PC_MODULE; else TAPEGRAD_MPI_LINK_FLAGS, -L/-l flags made from the libraries
# FindMPI found.
set(TAPEGRAD_MPI_PC_MODULE "")
set(TAPEGRAD_MPI_LINK_FLAGS "")
if(TAPEGRAD_HAVE_MPI)
    foreach(_tg_mod ompi-c mpich mpi-c mpi)
        pkg_check_modules(_TG_MPI_PC QUIET ${_tg_mod})
        if(_TG_MPI_PC_FOUND)
            set(TAPEGRAD_MPI_PC_MODULE ${_tg_mod})
            break()
        endif()
    endforeach()
    if(NOT TAPEGRAD_MPI_PC_MODULE)
        foreach(_tg_lib IN LISTS MPI_C_LIBRARIES)
            get_filename_component(_tg_dir "${_tg_lib}" DIRECTORY)
            get_filename_component(_tg_name "${_tg_lib}" NAME_WE)
            string(REGEX REPLACE "^lib" "" _tg_name "${_tg_name}")
            string(APPEND TAPEGRAD_MPI_LINK_FLAGS " -L${_tg_dir} -l${_tg_name}")
        endforeach()
        string(STRIP "${TAPEGRAD_MPI_LINK_FLAGS}" TAPEGRAD_MPI_LINK_FLAGS)
    endif()
    unset(_tg_mod)
endif()

# tapegrad_use_mpi(<target>): compiles <target> with TG_HAVE_MPI=1 and links it to MPI,
# privately, when MPI is on; does nothing otherwise.
function(tapegrad_use_mpi target)
    if(TAPEGRAD_HAVE_MPI)
        target_compile_definitions(${target} PRIVATE TG_HAVE_MPI=1)
        target_link_libraries(${target} PRIVATE MPI::MPI_C)
    endif()
endfunction()
