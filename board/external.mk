# Every package of this external tree; Buildroot includes this file once.
include $(sort $(wildcard $(BR2_EXTERNAL_IKECORE_PATH)/package/*/*.mk))
