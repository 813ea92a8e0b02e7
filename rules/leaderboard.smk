# Run JSONs (+ tuning choices, published numbers, the report's figures) -> results/leaderboard.*
# Built from every run of the study, so a method added to models/ and the study gets its rows
# after one `snakemake`. Include after rules/report.smk (it embeds the report's PNG figures).


rule leaderboard:
    input:
        runs=study.run_paths(),
        chosen=[study.chosen_path(*key) for key in study.tuned_keys()],
        published=local(study.published_file),  # a repo file, never in storage
        figures=rules.report.output,
    output:
        table=multiext(PATHS.leaderboard, ".csv", ".md"),
        html=report(f"{PATHS.leaderboard}.html", caption="../report/leaderboard.rst", category="Leaderboard"),
    params:
        chosen=lambda w, input: f"--chosen {' '.join(input.chosen)}" if input.chosen else "",
        stem=PATHS.leaderboard,
        figures=PATHS.figures,
        ours=" ".join(study.ours),
    shell:
        "{SPECBENCH} leaderboard {input.runs} {params.chosen} --published {input.published}"
        " --figures {params.figures} --ours {params.ours} --out {params.stem}"
