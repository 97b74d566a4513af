# cmake -DIMAGE=<file> -P CheckBootSector.cmake
# Fails unless IMAGE is a 512-byte boot sector with the 55 AA signature.
if(NOT EXISTS "${IMAGE}")
  message(FATAL_ERROR "boot sector image not found: ${IMAGE}")
endif()
file(SIZE "${IMAGE}" _size)
if(NOT _size EQUAL 512)
  message(FATAL_ERROR "boot sector ${IMAGE} is ${_size} bytes, expected 512")
endif()
file(READ "${IMAGE}" _sig OFFSET 510 LIMIT 2 HEX)
if(NOT _sig STREQUAL "55aa")
  message(FATAL_ERROR "boot sector ${IMAGE} ends in ${_sig}, expected 55aa")
endif()
