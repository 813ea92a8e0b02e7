# Datasets -> RecBole atomic files with a fixed split (data/atomic/<ds>/).

rule prepare_ml100k:
    output:
        train="data/atomic/ml100k/ml100k.train.inter",
        test="data/atomic/ml100k/ml100k.test.inter",
        stats="data/atomic/ml100k/stats.json",
    params:
        fraction=config.get("split", {}).get("test_fraction", 0.2),
        seed=config.get("split", {}).get("seed", 2024),
    shell:
        "specbench prepare ml100k --out data/atomic --test-fraction {params.fraction} --seed {params.seed}"
