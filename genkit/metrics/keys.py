"""Names of metric results and protocol fields (stable keys for JSON, loggers and dashboards)."""

from __future__ import annotations

# results
KEY_FID = "fid"
KEY_KID_MEAN = "kid_mean"
KEY_KID_STD = "kid_std"
KEY_LPIPS = "lpips"
KEY_LPIPS_STD = "lpips_std"
KEY_DIVERSITY = "lpips_diversity"
KEY_CONTENT = "content_distance"
KEY_STYLE = "gram_style_distance"
KEY_LPIPS_CONTENT = "lpips_to_content"
KEY_USAGE_FRACTION = "patch_usage_fraction"
KEY_USAGE_ENTROPY = "patch_usage_entropy"
KEY_USAGE_MAX_OVER_MEAN = "patch_usage_max_over_mean"
KEY_USAGE_CV = "patch_usage_cv"

# protocol record (every reported number carries one)
KEY_PROTOCOL = "protocol"
KEY_WEIGHTS = "weights"  # sha256 of the weights file, or RANDOM
KEY_WEIGHTS_FILE = "weights_file"
KEY_FID_PROTOCOL = "fid_protocol"  # torch-fidelity | clean-fid | ... (genkit.metrics.protocols)
KEY_RESIZE = "resize"
KEY_NUM_SAMPLES = "num_samples"
KEY_IMAGE_SIZES = "image_sizes"
KEY_MIXED_SIZES = "mixed_sizes"
KEY_FEATURE_EXTRACTOR = "feature_extractor"
KEY_RANK_DEFICIENT = "rank_deficient"  # per FID input: N <= 2048, so the covariance has rank <= N - 1 < 2048
KEY_TRACE_SQRT = "trace_sqrt"
KEY_WARNINGS = "warnings"  # notes a reader of the number must see (e.g. small N)

RANDOM_WEIGHTS = "RANDOM"

# FID/KID protocol constants
INCEPTION_FEATURE = "2048"
INCEPTION_NUM_FEATURES = 2048
INCEPTION_INPUT_SIZE = 299
INCEPTION_NAME = "inception-v3-compat (torch-fidelity FeatureExtractorInceptionV3, TF 2015-12-05 graph)"
RESIZE_MODE = "bilinear, TF1-exact (torch-fidelity interpolate_bilinear_2d_like_tensorflow1x), to 299x299"
STATS_FORMAT_VERSION = 1
TRACE_SQRT_METHOD = ("sum of singular values of B1 B2^T with S_i = B_i^T B_i (pivoted Cholesky, rank <= N - 1); "
                     "exact for rank-deficient covariances")
